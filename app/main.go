// moscow-time prints the current time in Moscow (a fixed UTC+3 zone) as JSON.
//
// One source, three modes:
//   - CLI:    MODE=once prints one JSON document and exits 0.
//   - WAGI:   when REQUEST_METHOD is set (a CGI request, as Spin's WAGI executor sends it),
//     it writes a CGI response to stdout and exits.
//   - Server: otherwise it serves the JSON on :8080 (PORT overrides) until SIGTERM or SIGINT.
//
// Moscow is a fixed zone on purpose: WASI has no time-zone database to load.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// moscow has kept UTC+3 all year since 2014.
var moscow = time.FixedZone("MSK", 3*60*60)

// clock is replaced in tests.
var clock = time.Now

type moscowTime struct {
	MoscowTime string `json:"moscow_time"`
	Timestamp  int64  `json:"timestamp"`
}

func currentMoscowTime() moscowTime {
	now := clock().In(moscow)
	return moscowTime{MoscowTime: now.Format("2006-01-02 15:04:05 MST"), Timestamp: now.Unix()}
}

func body() []byte {
	encoded, err := json.Marshal(currentMoscowTime())
	if err != nil {
		panic(err) // two plain fields cannot fail to encode
	}
	return append(encoded, '\n')
}

// route answers a request the same way in server and WAGI mode.
func route(method, path string) (status int, allow string) {
	if path != "" && path != "/" {
		return http.StatusNotFound, ""
	}
	if method != http.MethodGet && method != http.MethodHead {
		return http.StatusMethodNotAllowed, "GET, HEAD"
	}
	return http.StatusOK, ""
}

func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, allow := route(r.Method, r.URL.Path)
		if allow != "" {
			w.Header().Set("Allow", allow)
		}
		if status != http.StatusOK {
			http.Error(w, http.StatusText(status), status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body())
	})
}

// runWagi writes a CGI response for the request described by getenv.
func runWagi(getenv func(string) string, out io.Writer) error {
	status, allow := route(getenv("REQUEST_METHOD"), getenv("PATH_INFO"))
	if status != http.StatusOK {
		text := http.StatusText(status)
		headers := fmt.Sprintf("Status: %d %s\nContent-Type: text/plain\n", status, text)
		if allow != "" {
			headers += "Allow: " + allow + "\n"
		}
		_, err := fmt.Fprintf(out, "%s\n%s\n", headers, text)
		return err
	}
	_, err := fmt.Fprintf(out, "Content-Type: application/json\n\n%s", body())
	return err
}

func serve(ctx context.Context, addr string) error {
	server := &http.Server{Addr: addr, Handler: handler(), ReadHeaderTimeout: 5 * time.Second}
	failed := make(chan error, 1)
	go func() { failed <- server.ListenAndServe() }()
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdown)
	}
}

func run() error {
	switch {
	case os.Getenv("REQUEST_METHOD") != "":
		return runWagi(os.Getenv, os.Stdout)
	case os.Getenv("MODE") == "once":
		_, err := os.Stdout.Write(body())
		return err
	default:
		port := os.Getenv("PORT")
		if port == "" {
			port = "8080"
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		err := serve(ctx, ":"+port)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "moscow-time:", err)
		os.Exit(1)
	}
}
