"""The content-addressed store runs share: entries, what each entry holds on disk, job locks, and the cache commands' logic."""
