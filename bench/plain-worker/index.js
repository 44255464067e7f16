// The plain Worker the memory benchmark compares ours with: it reads each request's body whole,
// logs one line and answers, nothing else. Its growth under `wrangler dev` is the local
// runtime's own.
export default {
  async fetch(request) {
    const body = await request.arrayBuffer();
    console.log(JSON.stringify({ event: "request", path: new URL(request.url).pathname, bytes: body.byteLength }));
    return Response.json({ status: "ok" });
  },
};
