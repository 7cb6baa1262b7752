"""Faust agents: parse, group (with routing and trace closing) and one drain per enabled sink.

Found by the App's autodiscover when a worker starts; pure logic lives in modules without
faust (line_parser, routing, drain_runner) so tests and benchmarks call it directly.
"""
