"""The reference update rules, shipped with the package as ``evozero.programs``."""
