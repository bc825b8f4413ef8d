"""Go-Queue: a message broker that speaks the Kafka protocol."""
