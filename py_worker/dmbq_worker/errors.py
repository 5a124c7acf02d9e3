"""The one exception type that crosses the wire: raised anywhere in the worker, sent as an Error reply."""

from __future__ import annotations

from dmbq_worker.proto import dmbq_pb2 as pb


class WorkerError(Exception):
    """An error the orchestrator should see as a typed Error reply (not a crash)."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        field: str = "",
        details: str = "",
        epoch: int = 0,
        step: int = 0,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details
        self.epoch = epoch
        self.step = step

    def to_proto(self) -> pb.Error:
        return pb.Error(
            code=self.code,  # type: ignore[arg-type]
            message=self.message,
            field=self.field,
            details=self.details,
            epoch=self.epoch,
            step=self.step,
        )


def invalid(field: str, message: str) -> WorkerError:
    """A bad field in a request: the message names the field."""
    return WorkerError(pb.ERROR_CODE_INVALID_ARGUMENT, f"{field}: {message}", field=field)


def data_error(message: str, *, field: str = "dataset.path") -> WorkerError:
    return WorkerError(pb.ERROR_CODE_DATA, message, field=field)


def not_configured(what: str) -> WorkerError:
    return WorkerError(pb.ERROR_CODE_NOT_CONFIGURED, f"{what} needs a Configure request first")


def checkpoint_error(message: str) -> WorkerError:
    return WorkerError(pb.ERROR_CODE_CHECKPOINT, message, field="path")


def non_finite(epoch: int, step: int, loss: float) -> WorkerError:
    return WorkerError(
        pb.ERROR_CODE_NON_FINITE,
        f"loss became {loss} at epoch {epoch}, step {step}; the last good checkpoint is kept",
        epoch=epoch,
        step=step,
    )
