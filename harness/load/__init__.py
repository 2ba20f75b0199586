"""Load from Locust: user classes for the reference target and a bounded headless run.

Locust patches the standard library with gevent when imported, so only the worker child
process imports it; the harness refers to the user classes by name alone.
"""

USER_CLASS_NAMES: tuple[str, ...] = (
    "AbusiveSearcher",
    "AccountReader",
    "AccountWriter",
    "BlobReader",
    "BrowseUser",
    "CheckoutUser",
    "CursorPager",
    "JobUser",
    "NormalSearcher",
    "OffsetPager",
    "OrderSearcher",
    "OrderUser",
    "PoisonUser",
    "ProductReader",
    "ProductWriter",
    "SessionUser",
    "SlowDownloader",
    "TenantUser",
    "WorkUser",
)
