"""Fuzzing of the parsers that read untrusted bytes (`make fuzz`; a short smoke runs in `make test`)."""
