"""The model registry side of the product: aliases, the promotion gate and model cards.

``aliases`` is imported by training and serving, so this package imports
nothing eagerly; import ``warning.registry.gate`` or ``warning.registry.cards``
where they are needed.
"""
