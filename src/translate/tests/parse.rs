use super::*;

// ---- parse errors ------------------------------------------------------------------------------

#[test]
fn yaml_errors_carry_line_and_column() {
    let e = err("kind: StatefulSet\nspec:\n  template: [unclosed\n", &full());
    assert!(matches!(e, TranslateError::Yaml { .. }), "{e}");
    assert!(e.to_string().starts_with("test.yaml:3:"), "{e}");

    let bad_type = sts(
        "containers:\n  - name: activegate\n    image: r/ag:1\n    ports: [{containerPort: abc}]\n",
    );
    let e = err(&bad_type, &full());
    assert!(e.to_string().starts_with("test.yaml:11:"), "{e}");
}

#[test]
fn empty_non_utf8_and_oversized_input_are_refused() {
    assert!(matches!(parse("x", b""), Err(TranslateError::Empty { .. })));
    assert!(matches!(
        parse("x", b"# only a comment\n---\n"),
        Err(TranslateError::Empty { .. })
    ));
    let e = parse("x", b"kind: Service\nmetadata:\n  name: a\xffb\n").expect_err("not UTF-8");
    assert_eq!(
        e.to_string(),
        "x:3:10: the file is not UTF-8 text (invalid byte at offset 33)"
    );
    let big = vec![b'#'; (manifest::MAX_MANIFEST_BYTES + 1) as usize];
    assert!(matches!(
        parse("x", &big),
        Err(TranslateError::TooLarge { .. })
    ));
}

#[test]
fn yaml_1_1_booleans_stay_strings() {
    // `value: on` must not become `true` (nor fail as a boolean where a string is expected).
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    env:\n      - {{name: FLAG, value: on}}\n"
        )),
        &full(),
    );
    assert_eq!(ag(&t).env("FLAG"), Some("on"));
}
