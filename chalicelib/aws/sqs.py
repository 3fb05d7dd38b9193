"""The indexing queue: an SQS standard queue that the bucket's events go to
and the indexing workers drain (its dead-letter queue, redrive policy and
the bucket's notification are made by `make aws-setup`; the workers' event
source by `chalice deploy`)."""

from botocore.exceptions import ClientError

from chalicelib.aws import clients as aws
from chalicelib.core.ports import IndexQueue, QueueDepth

MAX_BATCH = 10  # entries per SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch
MAX_DELAY_SECONDS = 900  # SendMessage's DelaySeconds ceiling
MAX_VISIBILITY_SECONDS = 43_200  # ChangeMessageVisibility's ceiling (12 hours)
# GetQueueAttributes' counts: waiting, in flight (received, not deleted), delayed.
DEPTH = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


class SqsIndexQueue(IndexQueue):
    def __init__(self, client, queue_name: str, stage: str = "") -> None:
        self._client = client
        self._name = queue_name
        self._stage = stage
        self._url: str | None = None
        self._resource = f"SQS queue {queue_name!r}"

    def send(self, bodies: list[str], delay_seconds: int = 0) -> None:
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        for start in range(0, len(bodies), MAX_BATCH):
            entries = [
                {"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
                for i, body in enumerate(bodies[start : start + MAX_BATCH])
            ]
            with aws.translated(self._resource, self._stage):
                response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            self._raise_on_failures(response, "send")

    def delete(self, receipts: list[str]) -> None:
        for start in range(0, len(receipts), MAX_BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts[start : start + MAX_BATCH])]
            with aws.translated(self._resource, self._stage):
                response = self._client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            # A handle that is no longer valid means the message is gone already.
            self._raise_on_failures(response, "delete", ignored=("ReceiptHandleIsInvalid",))

    def retry_after(self, receipts: list[str], seconds: int) -> None:
        visibility = max(0, min(int(seconds), MAX_VISIBILITY_SECONDS))
        for start in range(0, len(receipts), MAX_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": visibility}
                for i, r in enumerate(receipts[start : start + MAX_BATCH])
            ]
            with aws.translated(self._resource, self._stage):
                response = self._client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
            self._raise_on_failures(
                response, "change visibility", ignored=("ReceiptHandleIsInvalid", "MessageNotInflight")
            )

    def depth(self) -> QueueDepth:
        with aws.translated(self._resource, self._stage):
            attributes = self._client.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(DEPTH))["Attributes"]
        return QueueDepth(*(int(attributes.get(name, 0)) for name in DEPTH))

    @property
    def url(self) -> str:
        """The queue's URL, asked once per process (GetQueueUrl)."""
        if self._url is None:
            with aws.translated(self._resource, self._stage):
                self._url = self._client.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url

    def _raise_on_failures(self, response: dict, what: str, ignored: tuple[str, ...] = ()) -> None:
        failures = [f for f in response.get("Failed", []) if f.get("Code") not in ignored]
        if not failures:
            return
        code = failures[0].get("Code", "")
        error = {"Error": {"Code": code, "Message": failures[0].get("Message", "")}}
        with aws.translated(self._resource, self._stage):
            raise ClientError(error, f"{what} ({len(failures)} of the batch)")
