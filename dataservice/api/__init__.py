"""HTTP: one blueprint per resource, plus the probes."""
