"""The experiment registry (typed config objects, one per concern) and where a run's files go."""
