"""labreport: measure a container lab for real and render an honest report."""

__version__ = "0.1.0"
