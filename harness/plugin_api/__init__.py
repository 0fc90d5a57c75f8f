"""What a plugin author meets: the Task and Model classes, the hook specifications, the rules
for names, and the plugin manager that loads entry points and isolates broken plugins.

The lowest layer: it imports nothing else of the harness but :mod:`harness.errors` and
:mod:`harness.version`.
"""
