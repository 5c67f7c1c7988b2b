"""Models: where the base model is found, how it is loaded, on which device and dtype, the adapters swapped onto it, and the model kept loaded between runs."""
