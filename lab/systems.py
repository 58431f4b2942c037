"""The lab's systems under test: which services run where, in which language, and whom they call.

A system is a dict:
  entry      the service the load calls (its routes are the load's paths)
  mix        ((path, weight), ...): the load's requests
  data       services that keep data on the lab's disk (disk:read / disk:write steps)
  services   name -> {machines: [m1..m3] (one instance on each; more than one is a replicated
             service), lang: nginx|node|python|go, port, routes: {path: [steps]}, and the calls'
             manners: keep_alive (pooled connections, default off: a new connection per call),
             timeout_ms (default 2000), retries (default 0: a failed call is retried on the
             callee's next instance)}
  A step is (callee, path): a call to every instance of callee in turn (round robin), or
  "disk:read" / "disk:write".

README.md draws both. The shop is what the scenarios were first written on; the ledger has a
different shape on purpose (replicas, keep-alive pools, timeouts and retries, fan-in to one
datastore, a call chain five services deep, a Go service beside Node.js and Python), so that rules
fitted to the shop are judged on a system they were not developed on.
"""

SHOP = {
    "entry": "gateway",
    "mix": (("/browse", 50), ("/cart", 30), ("/checkout", 20)),
    "data": ("store",),
    "services": {
        "gateway": {"machines": ["m1"], "lang": "nginx", "port": 8080,
                    "routes": {"/browse": [("frontend", "/browse")], "/cart": [("frontend", "/cart")],
                               "/checkout": [("frontend", "/checkout")]}},
        "frontend": {"machines": ["m1"], "lang": "node", "port": 8081,
                     "routes": {"/browse": [("catalog", "/items")], "/cart": [("cart", "/cart")],
                                "/checkout": [("checkout", "/checkout")]}},
        "catalog": {"machines": ["m2"], "lang": "python", "port": 8082,
                    "routes": {"/items": [("pricing", "/price")]}},
        "cart": {"machines": ["m2"], "lang": "node", "port": 8083, "routes": {"/cart": [("store", "/get")]}},
        "checkout": {"machines": ["m3"], "lang": "python", "port": 8084,
                     "routes": {"/checkout": [("cart", "/cart"), ("payment", "/pay")]}},
        "pricing": {"machines": ["m3"], "lang": "node", "port": 8085, "routes": {"/price": []}},
        "payment": {"machines": ["m3"], "lang": "python", "port": 8086, "routes": {"/pay": [("store", "/put")]}},
        "store": {"machines": ["m1"], "lang": "python", "port": 8087,
                  "routes": {"/get": ["disk:read"], "/put": ["disk:write"]}},
    },
}

# Pooled connections everywhere; the edge gives an api call 1.5 s and retries a failed one once on
# the next replica; the api gives its calls 1 s. m1 holds the edge, an api replica and the
# database that four services share.
_POOL = {"keep_alive": True}
LEDGER = {
    "entry": "edge",
    "mix": (("/balance", 50), ("/pay", 30), ("/history", 20)),
    "data": ("db",),
    "services": {
        "edge": dict(_POOL, machines=["m1"], lang="node", port=8080, timeout_ms=1500, retries=1,
                     routes={"/balance": [("api", "/balance")], "/pay": [("api", "/pay")],
                             "/history": [("api", "/history")]}),
        "api": dict(_POOL, machines=["m1", "m2", "m3"], lang="go", port=8081, timeout_ms=1000,
                    routes={"/balance": [("auth", "/check"), ("accounts", "/get")],
                            "/pay": [("auth", "/check"), ("ledger", "/post")],
                            "/history": [("auth", "/check"), ("history", "/list")]}),
        "auth": dict(_POOL, machines=["m2"], lang="python", port=8082, routes={"/check": [("db", "/get")]}),
        "ledger": dict(_POOL, machines=["m3"], lang="node", port=8083,
                       routes={"/post": [("accounts", "/debit"), ("db", "/put")]}),
        "accounts": dict(_POOL, machines=["m2"], lang="python", port=8084,
                         routes={"/get": [("db", "/get")], "/debit": [("risk", "/score"), ("db", "/put")]}),
        "risk": dict(_POOL, machines=["m3"], lang="go", port=8085, routes={"/score": []}),
        "history": dict(_POOL, machines=["m2"], lang="node", port=8086, routes={"/list": [("db", "/get")]}),
        "db": dict(_POOL, machines=["m1"], lang="python", port=8087,
                   routes={"/get": ["disk:read"], "/put": ["disk:write"]}),
    },
}

SYSTEMS = {"shop": SHOP, "ledger": LEDGER}
