"""Online models: plain Python, no Kafka or Redis, `learn_one` / `predict_one` verbs, serializable."""
