"""`railstream chat` on a pipe and on a terminal (tests/test_chat_terminal.py)."""

from tests.mutation_check import Mutation

_T = "tests/test_chat_terminal.py"

MUTATIONS = [
    Mutation(
        name="chat terminal: piped input is read as strict text (one bad byte: a traceback)",
        path="engine/cli/_chat.py",
        old="        raw = self.stdin.buffer.readline()\n",
        new="        raw = self.stdin.readline().encode()\n",
        tests=(f"{_T}::test_bytes_the_locale_cannot_decode_spoil_only_their_own_line",),
    ),
    Mutation(
        name="chat terminal: a line it cannot decode is replaced without saying so",
        path="engine/cli/_chat.py",
        old="        except UnicodeDecodeError as exc:\n            print(\n",
        new="        except UnicodeDecodeError as exc:\n            print(\n                file=open(os.devnull, 'w'),\n",
        tests=(f"{_T}::test_bytes_the_locale_cannot_decode_spoil_only_their_own_line",),
    ),
    Mutation(
        name="chat terminal: `chat | head` ends with a BrokenPipeError traceback",
        path="engine/cli/_chat.py",
        old="    except* BrokenPipeError:\n",
        new="    except* ZeroDivisionError:\n",
        tests=(f"{_T}::test_a_reader_that_leaves_ends_the_chat_quietly",),
    ),
    Mutation(
        name="chat terminal: a streamed reply's log is read before its stream is closed",
        path="engine/cli/_chat.py",
        old="""        stream = self.rails.stream_async(messages=history, include_metadata=True)
        try:
            async with stream:
                async for chunk in stream:
                    assert isinstance(chunk, dict)
                    if "text" in chunk:
                        on_text(chunk["text"])
                    elif "error" in chunk:
                        return chunk
        finally:
""",
        new="""        async with self.rails.stream_async(messages=history, include_metadata=True) as stream:
          try:
                async for chunk in stream:
                    assert isinstance(chunk, dict)
                    if "text" in chunk:
                        on_text(chunk["text"])
                    elif "error" in chunk:
                        return chunk
          finally:
""",
        tests=(f"{_T}::test_a_reader_that_leaves_ends_the_chat_quietly",),
    ),
    Mutation(
        name="chat terminal: the prompt has no readline (no line editing, no history)",
        path="engine/cli/_chat.py",
        old="        import readline  # noqa: F401  (input() uses it once it is imported)\n",
        new="        pass\n",
        tests=(f"{_T}::test_a_typed_line_can_be_recalled_and_the_terminal_is_given_back",),
    ),
    Mutation(
        name="chat terminal: Ctrl-C at the prompt leaves the terminal without echo",
        path="engine/cli/_chat.py",
        old="        termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, modes)\n",
        new="        pass\n",
        tests=(f"{_T}::test_a_typed_line_can_be_recalled_and_the_terminal_is_given_back",),
    ),
]
