"""The background worker: takes jobs off a queue and runs them."""
