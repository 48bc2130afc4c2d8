"""Guarded streaming from a FastAPI (asyncio) endpoint, over railstream's stream_async.

    .venv/bin/pip install fastapi uvicorn
    RAILSTREAM_CONFIG=examples/demo .venv/bin/uvicorn --app-dir examples fastapi_app:app --port 8080
    curl -N localhost:8080/chat -H 'content-type: application/json' -d '{"message": "Hello!"}'

railstream runs its trio pipeline inside this asyncio app (trio guest mode on uvicorn's loop).
A client that disconnects ends the response, and with it the stream and the model's request.
"""

import os

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from railstream import LLMRails, RailsConfig

rails = LLMRails(RailsConfig.from_path(os.environ.get("RAILSTREAM_CONFIG", "examples/demo")))
app = FastAPI(title="railstream + FastAPI")


class ChatRequest(BaseModel):
    message: str


@app.post("/chat")
async def chat(request: ChatRequest) -> StreamingResponse:
    # Bad input fails here, before the response starts: FastAPI answers it with an error.
    stream = rails.stream_async(messages=[{"role": "user", "content": request.message}])

    async def guarded_text():
        async with stream:  # closing the stream cancels the model if the client left early
            async for chunk in stream:
                yield chunk  # text, or one JSON error line if a rail blocked

    return StreamingResponse(guarded_text(), media_type="text/plain; charset=utf-8")
