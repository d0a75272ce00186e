use super::*;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn ctx(subject: &str, generation: u64) -> Context<'_> {
    Context {
        kind: "github-token",
        subject,
        generation,
    }
}

fn local() -> Envelope {
    Envelope::local(TokenKey::parse(KEY).unwrap())
}

#[tokio::test]
async fn a_record_opens_only_as_itself() {
    let env = local();
    let row = env.seal(ctx("U1", 3), b"ghu_plain_token").await.unwrap();
    assert_eq!(row[0], SEALED_V3);
    assert!(!String::from_utf8_lossy(&row).contains("ghu_plain"));
    let opened = env.open(ctx("U1", 3), &row).await.unwrap();
    assert_eq!(opened.plaintext, b"ghu_plain_token");
    assert!(opened.rewrapped.is_none(), "sealed the current way");
    // Another person, another kind, a rolled-back generation, a relabelled scheme: refused.
    assert!(env.open(ctx("U2", 3), &row).await.is_err());
    let other_kind = Context {
        kind: "sso-login",
        ..ctx("U1", 3)
    };
    assert!(env.open(other_kind, &row).await.is_err());
    assert!(
        env.open(ctx("U1", 4), &row)
            .await
            .unwrap_err()
            .contains("rolled back")
    );
    let mut relabelled = row.clone();
    relabelled[9] = Wrapping::Kms.byte();
    assert!(env.open(ctx("U1", 3), &relabelled).await.is_err());
    // Truncated anywhere: an error, never a panic.
    for n in 0..row.len() {
        assert!(env.open(ctx("U1", 3), &row[..n]).await.is_err());
    }
}

#[tokio::test]
async fn a_v2_row_still_opens_and_comes_back_re_sealed() {
    let key = TokenKey::parse(KEY).unwrap();
    let v2 = key.seal_v2("U1", 2, b"old-format").unwrap();
    let env = local();
    let opened = env.open(ctx("U1", 2), &v2).await.unwrap();
    assert_eq!(opened.plaintext, b"old-format");
    let row = opened.rewrapped.expect("re-sealed as v3");
    assert_eq!(row[0], SEALED_V3);
    assert_eq!(
        env.open(ctx("U1", 2), &row).await.unwrap().plaintext,
        b"old-format"
    );
}
