"""Signing keys: the key store, the JWKS document and the rotation command."""
