"""Record and photo stores."""
