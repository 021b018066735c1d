"""The bundled demo app: a small voice menu, served by ``jambonz-lab demo``.

It greets the caller, asks for speech or digits, says back what it heard,
and hangs up on "goodbye" or after three turns.
"""

from __future__ import annotations

from ..net import Service, Session
from ..protocol import Message

__all__ = ["NEXT", "PATH", "PROMPT", "install"]

PATH = "/demo"
PROMPT = "Say something, or press some keys and then the pound key."
#: what ``jambonz-lab demo`` prints last: the next thing to try (paths of this repository)
NEXT = """next:
  pip install '.[lab]' && jupyter lab notebooks/01-quickstart.ipynb    # the same, from notebook cells
  jambonz-lab serve examples/echo.py --port 3000                       # your app: point jambonz at it, or
  jambonz-lab call ws://127.0.0.1:3000/echo --speech hello --dtmf 42#  # call it with the simulator"""


def install(service: Service) -> None:
    """Attach the demo's handlers to ``service``."""
    service.on("session:new", _new)


def _listen(session: Session, prompt: str) -> Session:
    return session.gather(
        input=["speech", "digits"], actionHook="/heard", finishOnKey="#", timeout=8, say={"text": prompt}
    )


def _new(session: Session) -> None:
    session.locals["turns"] = 0

    def heard(msg: Message) -> None:
        session.locals["turns"] += 1
        if msg.reason == "speechDetected" and "goodbye" in (msg.transcript or "").lower():
            session.say(text="Goodbye!").hangup().reply()
        elif session.locals["turns"] >= 3:
            session.say(text="That is all for this demo. Goodbye!").hangup().reply()
        elif msg.reason == "speechDetected":
            _listen(session, f"You said: {msg.transcript}. {PROMPT}").reply()
        elif msg.reason == "dtmfDetected":
            _listen(session, f"You pressed {' '.join(msg.digits or '')}. {PROMPT}").reply()
        else:
            _listen(session, f"I did not catch that. {PROMPT}").reply()

    session.on("/heard", heard)
    name = session.caller_name or "there"
    session.say(text=f"Hello {name}, welcome to the jambonz lab demo.")
    _listen(session, PROMPT).send()
