"""Tools for plugin authors: conformance checks, the plugin scaffolds and lm-eval task export."""
