"""Kafka plumbing shared by collectors, workers and operator commands: the chunk publisher, topic
administration, the one-off range reader and aiokafka compatibility patches. No faust here."""
