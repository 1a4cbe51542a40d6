/* {{name}}: a minimal wasmdeck plugin in C. Build it with `wasmdeck build`. */
#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"{{name}}\",\"version\":\"0.1.0\","
    "\"description\":\"A minimal wasmdeck plugin\","
    "\"actions\":[{\"name\":\"hello\",\"description\":\"Say hello\"}]}")

int wasmdeck_execute(const wd_request *req) {
    (void)req; /* the host only sends actions the metadata declares */
    return wd_output_str("hello from {{name}}");
}
