"""One cell's work on one device: the training loop, seeds trained together, metrics,
generation, the timing phase, sizing by parameter count, devices and run-time contract checks.
"""
