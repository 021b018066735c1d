"""Echo: listen for speech or digits and say back what was heard, until goodbye.

Run:  jambonz-lab serve examples/echo.py --port 3000
Then point a jambonz application's calling webhook at ws://HOST:3000/echo
"""

import jambonz_lab as jl

svc = jl.service("/echo")

PROMPT = "Say something, or press some keys. Say goodbye to hang up."


def listen(session: jl.Session, prompt: str) -> jl.Session:
    """Queue a gather that sends its result to /echo."""
    return session.gather(
        input=["speech", "digits"],
        actionHook="/echo",
        finishOnKey="#",
        timeout=10,
        say={"text": prompt},
    )


@svc.on("session:new")
def start(session: jl.Session) -> None:
    session.locals["turns"] = 0

    @session.on("/echo")
    def echo(msg: jl.Message) -> None:
        session.locals["turns"] += 1
        if msg.reason == "speechDetected":
            heard = msg.transcript or ""
            if "goodbye" in heard.lower():
                session.say(text="Goodbye!").hangup().reply()
                return
            listen(session, f"You said: {heard}. Say something else.").reply()
        elif msg.reason == "dtmfDetected":
            listen(session, f"You pressed {' '.join(msg.digits or '')}.").reply()
        else:
            listen(session, "I did not hear anything. " + PROMPT).reply()

    listen(session, PROMPT).send()
