"""Lukhas dreams: dream jobs on a sequential or a parallel (multi-process) engine.

Kept free of imports: worker processes import `lukhas_dreams.compute` only.
"""
