// /healthz and /readyz on a process's own cpp-httplib server (the stream and the diagnosis serve
// their queries with one). Include only where the server is set up: httplib.h is heavy.
#pragma once

namespace httplib {
class Server;
}  // namespace httplib

namespace faultline {

class Health;

// Adds GET /healthz and /readyz answering from `health` (which must outlive the server).
void ServeHealth(const Health& health, httplib::Server* http);

}  // namespace faultline
