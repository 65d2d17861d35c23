"""Getting results out of ferindex: tables (CSV/JSON) of any face list, ZIPs of face crops, and
XMP sidecars that photo managers read (expression keywords, MWG face regions with names).

Nothing here writes to a photo: crops are read from the originals, sidecars sit beside them.
"""
