"""medforget: find, remove and prove the removal of private and incorrect knowledge in biomedical VLMs."""

__version__ = "0.1.0"
