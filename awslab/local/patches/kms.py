"""KMS: a key's asymmetric private key made when first used, not with every key.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from awslab.local.patches._patch import patch

# The key specs whose keys sign or verify with a private key of their own; any other (a symmetric
# key, an HMAC key) never uses one on AWS, where moto makes an RSA 2048 key for it all the same.
ASYMMETRIC_PREFIXES = ("RSA_", "ECC_", "SM2")


class DeferredPrivateKey:
    """moto's private key for ``spec``, made on its first use (moto reads it only in Sign, Verify
    and GetPublicKey). Saved with the state as the spec alone until then, and as the key after."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.made = None

    def __getattr__(self, name: str):
        if name.startswith("__") or "spec" not in self.__dict__:   # unpickling: no key to make yet
            raise AttributeError(name)
        if self.made is None:
            from moto.kms.utils import generate_private_key

            self.made = generate_private_key(self.spec)
        return getattr(self.made, name)


@patch("moto.kms.models", gap="kms-key-material", phase="objects")
def generate_private_key(original, key_spec):
    """Speed, not a gap: every KMS key moto makes (each account's and region's aws/rds,
    aws/secretsmanager, ... keys, made at their first mention) generated an RSA 2048 private key,
    50 ms or more of CPU each, saved with the state as PEM and parsed again at every start; the
    symmetric keys the lab uses never need one. An asymmetric spec still gets its key at once."""
    if str(key_spec).startswith(ASYMMETRIC_PREFIXES):
        return original(key_spec)
    return DeferredPrivateKey(key_spec)
