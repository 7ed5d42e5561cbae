"""Unlearning methods, one module each, registered by name; see docs/methods.md.

Importing the package registers every method. `medforget.methods.unlearn.unlearn` runs one.
"""

from medforget.methods import ga, grad_diff, idk_po, kl, manu, mimic, mmunlearner, npo, retrain, rmu, simnpo, smfa  # noqa: F401  (registration)
from medforget.methods.base import Job, LossMethod, Method
from medforget.methods.registry import all_methods, get_method, parse_overrides, register

__all__ = ["Job", "LossMethod", "Method", "all_methods", "get_method", "parse_overrides", "register"]
