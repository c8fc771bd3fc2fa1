"""wtframe: a Python microframework for WebTransport servers, built on aioquic."""

from __future__ import annotations

from .app import App, State
from .client import ClientSession, connect
from .codes import CloseCode, StreamErrorCode
from .dialects import Dialect
from .exceptions import (
    CapsuleError,
    ConfigurationError,
    DatagramTooLarge,
    DecodeError,
    EncodeError,
    HandshakeError,
    IncompleteReadError,
    MessageError,
    MessageTooLarge,
    ProtocolError,
    Reject,
    SessionClosed,
    SessionError,
    StreamClosed,
    StreamError,
    StreamReset,
    StreamStopped,
    TruncatedMessage,
    WTFrameError,
)
from .limits import Limits
from .origins import OriginPolicy
from .requests import Request
from .routing import Router, SessionRoute
from .server import Server, serve
from .session import Session
from .streams import ReceiveStream, SendStream, Stream

__version__ = "0.1.0"

__all__ = [
    "App",
    "CapsuleError",
    "ClientSession",
    "CloseCode",
    "ConfigurationError",
    "DatagramTooLarge",
    "DecodeError",
    "Dialect",
    "EncodeError",
    "HandshakeError",
    "IncompleteReadError",
    "Limits",
    "MessageError",
    "MessageTooLarge",
    "OriginPolicy",
    "ProtocolError",
    "ReceiveStream",
    "Reject",
    "Request",
    "Router",
    "SendStream",
    "Server",
    "Session",
    "SessionClosed",
    "SessionError",
    "SessionRoute",
    "State",
    "Stream",
    "StreamClosed",
    "StreamError",
    "StreamErrorCode",
    "StreamReset",
    "StreamStopped",
    "TruncatedMessage",
    "WTFrameError",
    "__version__",
    "connect",
    "serve",
]
