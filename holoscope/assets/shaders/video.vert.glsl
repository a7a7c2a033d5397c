#version 430
// A quad covering the whole viewport, generated from gl_VertexID (4 vertices, triangle
// strip, no vertex buffers). Placement of the picture (letterbox / pillarbox) is done per
// fragment in video.frag.glsl from its `rect` uniform, so the bars are drawn by the same pass.

void main() {
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1));
    gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}
