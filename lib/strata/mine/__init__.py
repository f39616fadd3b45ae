"""Hard-negative mining: structured (taxonomy/attribute) and ANN candidates -> ``training_examples``."""
