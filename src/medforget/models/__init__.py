"""Loading, saving, LoRA, the embedded tiny model and the answer-token loss."""
