use super::*;

fn headers(authorization: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(authorization).unwrap(),
    );
    headers
}

#[test]
fn credentials_are_read_from_bearer_and_basic_headers() {
    assert_eq!(credential(&HeaderMap::new()), Credential::None);
    assert_eq!(
        credential(&headers("Bearer abc ")),
        Credential::Bearer("abc")
    );
    assert_eq!(
        credential(&headers("bearer abc")),
        Credential::Bearer("abc")
    );
    // alice:open:sesame (a password may hold colons)
    assert_eq!(
        credential(&headers("Basic YWxpY2U6b3BlbjpzZXNhbWU=")),
        Credential::Basic {
            user: "alice".into(),
            password: "open:sesame".into()
        }
    );
    assert_eq!(credential(&headers("Basic !!!")), Credential::Unusable);
    assert_eq!(credential(&headers("Digest x=1")), Credential::Unusable);
    assert_eq!(credential(&headers("Bearer")), Credential::Unusable);
}

#[test]
fn tokens_match_exactly() {
    let tokens = [Secret::new("alpha"), Secret::new("beta")];
    assert!(accepted(&tokens, "beta"));
    assert!(!accepted(&tokens, "bet"));
    assert!(!accepted(&tokens, "betaa"));
    assert!(!accepted(&tokens, ""));
}

#[test]
fn each_kind_of_token_has_its_rights() {
    let read = Rights {
        read: true,
        ..Rights::default()
    };
    let ingest = Rights {
        ingest: true,
        ..Rights::default()
    };
    for (rights, allowed) in [
        (read, [true, true, false, false]),
        (ingest, [true, false, true, false]),
        (Rights::ALL, [true, true, true, true]),
        (Rights::default(), [true, false, false, false]),
    ] {
        let got =
            [Access::Open, Access::Read, Access::Ingest, Access::Admin].map(|a| rights.allow(a));
        assert_eq!(got, allowed, "{rights:?}");
    }
}
