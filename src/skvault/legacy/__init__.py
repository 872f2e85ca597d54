"""Legacy formats: reading pickle, joblib and skops files without running code from them.

The modules of this package audit a legacy file statically against skvault's allow-list, and
rebuild its objects under the same trust policy that ``.skv`` files are loaded with, so that they
can be converted to ``.skv``.
"""
