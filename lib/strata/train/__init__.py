"""Two-stage contrastive fine-tuning of the two-tower retriever (graded SupCon, then multi-class circle)."""
