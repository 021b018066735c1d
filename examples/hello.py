"""Hello world: greet the caller and hang up.

Run:  jambonz-lab serve examples/hello.py --port 3000
Then point a jambonz application's calling webhook at ws://HOST:3000/hello
"""

import jambonz_lab as jl

svc = jl.service("/hello")


@svc.on("session:new")
def hello(session: jl.Session) -> None:
    who = session.caller_name or session.from_ or "there"
    session.pause(length=0.5)
    session.say(text=f"Hello {who}, this is jambonz lab speaking from Python.")
    session.hangup()
    session.send()
