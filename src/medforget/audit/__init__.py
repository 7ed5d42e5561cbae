"""`medforget audit`: does a model, any image-text-to-text checkpoint, still say who a patient is?"""
