"""The Resource Groups Tagging API's pagination, as AWS keeps it.

moto keeps a live generator for every ``PaginationToken`` it hands out, forever: the last page of
a listing never frees its token, so after any listing longer than a page the backend held a
generator, and a generator cannot be saved. Every save of the local AWS then failed (``cannot
pickle 'generator' object``), silently, until the server stopped and lost everything since.

On AWS a token is valid for at most 15 minutes (``PaginationTokenExpiredException``) and is not
part of any resource. So here: the token of the last page is freed, a token expires after 15
minutes, and a saved state holds no tokens (a token from before a restart is expired, as on AWS).
"""

from __future__ import annotations

import time

from awslab.local.patches._patch import patch

TOKEN_LIFETIME_S = 15 * 60   # "A PaginationToken is valid for a maximum of 15 minutes."


BACKEND = "moto.resourcegroupstaggingapi.models:ResourceGroupsTaggingAPIBackend"
GAP = "tagging-pagination-tokens"


@patch(BACKEND, "get_resources", gap=GAP, phase="answers")
@patch(BACKEND, "get_tag_keys", gap=GAP, phase="answers")
@patch(BACKEND, "get_tag_values", gap=GAP, phase="answers")
def paged(original, self, *args, **kwargs):
    token = kwargs.get("pagination_token", args[0] if args else None)
    now = time.monotonic()
    for old in [t for t, page in self._pages.items() if now - page.get("born", now) > TOKEN_LIFETIME_S]:
        del self._pages[old]   # moto answers PaginationTokenExpiredException for it
    new_token, result = original(self, *args, **kwargs)
    if token:
        self._pages.pop(token, None)   # used: the next page has a token of its own, the last none
    if new_token:
        self._pages[new_token]["born"] = now
    return new_token, result


@patch(BACKEND, gap=GAP, phase="answers", kind="add")
def __getstate__(self):
    # Tokens are a listing in progress, not state: none survives a restart (as one expires on AWS).
    return {**self.__dict__, "_pages": {}}
