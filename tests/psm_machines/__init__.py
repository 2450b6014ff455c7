"""python-statemachine machines written after the library's documented examples, imported by
``tests/test_pystatemachine.py`` (classes as ``module:Class``, documents through
``statemachine.io.load``)."""
