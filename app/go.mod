module github.com/labreport/moscow-time

go 1.22
