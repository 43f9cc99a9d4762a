"""The Keras lab: the only package of dogcat that imports TensorFlow.

Layer: the lab (docs/architecture.md).
"""
