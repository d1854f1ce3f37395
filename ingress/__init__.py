"""The Envoy ingress: its configuration model and rendering, and the Envoy process."""
