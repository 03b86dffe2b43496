use super::*;

#[test]
fn debug_clean() {
    let line = "{\"ts\":\"2026-11-01T10:01:07.001Z\",\"call_id\":\"abc\",\"tool\":\"mastodon.post_status\",\"usage\":{\"input_tokens\":12,\"output_tokens\":3,\"cache_read_tokens\":0},\"cost_usd\":0.0012,\"credential\":\"env:SOCIAL_TOKEN\",\"summary\":\"Posted\"}";
    let r = RedactorBuilder::new().build();
    for f in r.find(line) {
        println!("{:?} {:?}", f, &line[f.range.clone()]);
    }
}
