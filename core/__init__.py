"""The ground every layer stands on: settings, chunk models and codec, errors, durations, time
parsing, topic names and metric definitions. Imports nothing of Logweave's and never faust, so
collectors and sinks stay light."""
