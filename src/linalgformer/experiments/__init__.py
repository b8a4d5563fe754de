"""Experiment families as plug-ins: ``plugin`` (the interface), ``registry`` (families by name) and
one module per family (``charton``, ``spectral``, ``newton``): model, batch, loss, evaluate."""
