"""Files shipped inside the wtframe package, found through `importlib.resources`.

The browser ES module `wtframe.js` is installed with the package, so a web server can hand
it to pages without copying it anywhere:

```python
from wtframe.assets import browser_module

body = browser_module()  # serve it as text/javascript at /wtframe.js
```
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["BROWSER_MODULE", "BROWSER_MODULE_CONTENT_TYPE", "browser_module"]

BROWSER_MODULE: Traversable = resources.files("wtframe") / "static" / "wtframe.js"
"""Where the browser ES module `wtframe.js` lies inside the installed package."""

BROWSER_MODULE_CONTENT_TYPE = "text/javascript; charset=utf-8"
"""The `Content-Type` to serve `wtframe.js` with (browsers need a JavaScript type)."""


@functools.cache
def browser_module() -> bytes:
    """Return the source of the browser ES module `wtframe.js`.

    Returns:
        The module's bytes (UTF-8 JavaScript), read once and then cached.

    Raises:
        FileNotFoundError: If the package was installed without its `static` files.
    """
    return BROWSER_MODULE.read_bytes()
