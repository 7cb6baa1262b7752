"""The push intake: HTTP, Fluent forward and OTLP logs in, raw chunks on `logs.raw` out.

One stateless process (no faust) that many replicas can run behind a load balancer. Each protocol
has its own small module; what they share (acknowledging only after Kafka did, tenants and tokens,
rate limits, body limits, building lines) sits in modules of its own. docs/intake.md is the guide.
"""
