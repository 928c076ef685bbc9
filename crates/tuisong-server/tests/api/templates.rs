use crate::helpers::*;
use serde_json::{Value, json};

async fn all_titles(app: &TestApp, token: &str) -> Vec<Value> {
    let cats = app
        .get(&format!("/wxaapi/newtmpl/getcategory?access_token={token}"))
        .await;
    let ids: Vec<String> = cats["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["id"].to_string())
        .collect();
    let mut out = Vec::new();
    for id in ids {
        let v = app
            .get(&format!("/wxaapi/newtmpl/getpubtemplatetitles?access_token={token}&ids={id}&start=0&limit=30"))
            .await;
        out.extend(v["data"].as_array().expect("titles").iter().cloned());
    }
    out
}

#[tokio::test]
async fn the_category_list_has_ids_and_names() {
    let app = spawn_app().await;
    let t = app.token().await;
    let v = app
        .get(&format!("/wxaapi/newtmpl/getcategory?access_token={t}"))
        .await;
    assert_eq!(errcode(&v), 0);
    assert_eq!(v["errmsg"], "ok");
    let data = v["data"].as_array().expect("data");
    assert!(data.len() >= 12);
    assert!(
        data.iter()
            .all(|c| c["id"].is_u64() && c["name"].is_string())
    );
}

#[tokio::test]
async fn titles_are_paged_with_a_count_and_string_category_ids() {
    let app = spawn_app().await;
    let t = app.token().await;
    let cats = app
        .get(&format!("/wxaapi/newtmpl/getcategory?access_token={t}"))
        .await;
    let a = cats["data"][0]["id"].to_string();
    let b = cats["data"][1]["id"].to_string();
    let both = app
        .get(&format!(
            "/wxaapi/newtmpl/getpubtemplatetitles?access_token={t}&ids={a},{b}&start=0&limit=30"
        ))
        .await;
    let count = both["count"].as_u64().expect("count");
    assert!(count >= 6);
    let first = &both["data"][0];
    assert!(first["tid"].is_u64() && first["title"].is_string());
    assert!(
        first["categoryId"].is_string(),
        "categoryId is a string: {first}"
    );
    assert!(first["type"] == 2 || first["type"] == 3);
    let page = app
        .get(&format!(
            "/wxaapi/newtmpl/getpubtemplatetitles?access_token={t}&ids={a}%2C{b}&start=1&limit=2"
        ))
        .await;
    assert_eq!(page["count"], count, "count is the total, not the page");
    assert_eq!(page["data"].as_array().expect("data").len(), 2);
    assert_eq!(page["data"][0], both["data"][1]);
}

#[tokio::test]
async fn bad_title_queries_get_their_errcodes() {
    let app = spawn_app().await;
    let t = app.token().await;
    let p = |q: &str| format!("/wxaapi/newtmpl/getpubtemplatetitles?access_token={t}{q}");
    assert_wx_err(&app.get(&p("&start=0&limit=10")).await, 200018);
    assert_wx_err(&app.get(&p("&ids=&start=0&limit=10")).await, 200018);
    assert_wx_err(&app.get(&p("&ids=abc&start=0&limit=10")).await, 200019);
    assert_wx_err(&app.get(&p("&ids=999999&start=0&limit=10")).await, 200019);
    let cats = app
        .get(&format!("/wxaapi/newtmpl/getcategory?access_token={t}"))
        .await;
    let id = cats["data"][0]["id"].to_string();
    assert_wx_err(
        &app.get(&p(&format!("&ids={id}&start=-1&limit=10"))).await,
        200016,
    );
    assert_wx_err(
        &app.get(&p(&format!("&ids={id}&start=0&limit=0"))).await,
        200017,
    );
    assert_wx_err(
        &app.get(&p(&format!("&ids={id}&start=0&limit=31"))).await,
        200017,
    );
}

#[tokio::test]
async fn keywords_of_a_title_carry_kid_name_example_and_rule() {
    let app = spawn_app().await;
    let t = app.token().await;
    let titles = all_titles(&app, &t).await;
    let tid = &titles[0]["tid"];
    let v = app
        .get(&format!(
            "/wxaapi/newtmpl/getpubtemplatekeywords?access_token={t}&tid={tid}"
        ))
        .await;
    assert_eq!(errcode(&v), 0);
    let data = v["data"].as_array().expect("data");
    assert_eq!(v["count"], data.len());
    for k in data {
        assert!(
            k["kid"].is_u64()
                && k["name"].is_string()
                && k["example"].is_string()
                && k["rule"].is_string()
        );
    }
    assert_wx_err(
        &app.get(&format!(
            "/wxaapi/newtmpl/getpubtemplatekeywords?access_token={t}&tid=99999999"
        ))
        .await,
        200014,
    );
    assert_wx_err(
        &app.get(&format!(
            "/wxaapi/newtmpl/getpubtemplatekeywords?access_token={t}"
        ))
        .await,
        200014,
    );
}

async fn add(app: &TestApp, t: &str, body: Value) -> Value {
    app.post(
        &format!("/wxaapi/newtmpl/addtemplate?access_token={t}"),
        body,
    )
    .await
}

#[tokio::test]
async fn a_template_is_added_listed_and_deleted() {
    let app = spawn_app().await;
    let t = app.token().await;
    let titles = all_titles(&app, &t).await;
    let tid = titles.last().expect("a title")["tid"].clone();
    let v = add(
        &app,
        &t,
        json!({"tid": tid.to_string(), "kidList": [2, 1], "sceneDesc": "测试数据"}),
    )
    .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let id = v["priTmplId"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 43);
    let list = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={t}"))
        .await;
    let mine = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|x| x["priTmplId"] == id)
        .expect("listed")
        .clone();
    let content = mine["content"].as_str().expect("content");
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 2, "kidList order defines the rows: {content}");
    assert!(
        lines[0].contains("2.DATA}}") && lines[1].contains("1.DATA}}"),
        "{content}"
    );
    assert!(mine["example"].is_string() && (mine["type"] == 2 || mine["type"] == 3));
    let del = app
        .post(
            &format!("/wxaapi/newtmpl/deltemplate?access_token={t}"),
            json!({"priTmplId": id}),
        )
        .await;
    assert_eq!(errcode(&del), 0);
    let list = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={t}"))
        .await;
    assert!(
        !list["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|x| x["priTmplId"] == id)
    );
    let again = app
        .post(
            &format!("/wxaapi/newtmpl/deltemplate?access_token={t}"),
            json!({"priTmplId": id}),
        )
        .await;
    assert_wx_err(&again, 200002);
}

#[tokio::test]
async fn templates_with_enum_keywords_list_their_values() {
    let app = spawn_app().await;
    let t = app.token().await;
    let list = app
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={t}"))
        .await;
    let with_enum = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|x| x["content"].as_str().unwrap_or("").contains("enum_string"))
        .expect("the demo app has an enum template")
        .clone();
    let l = &with_enum["keywordEnumValueList"][0];
    assert!(
        l["keywordCode"]
            .as_str()
            .expect("code")
            .starts_with("enum_string")
    );
    assert!(l["keywordCode"].as_str().expect("code").ends_with(".DATA"));
    assert!(!l["enumValueList"].as_array().expect("values").is_empty());
    let plain = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|x| !x["content"].as_str().unwrap_or("").contains("enum_string"))
        .expect("a template without enums");
    assert!(plain.get("keywordEnumValueList").is_none());
}

#[tokio::test]
async fn bad_addtemplate_input_gets_its_errcode() {
    let app = spawn_app().await;
    let t = app.token().await;
    let titles = all_titles(&app, &t).await;
    let tid = titles[5]["tid"].to_string();
    assert_wx_err(
        &add(&app, &t, json!({"tid": "99999999", "kidList": [1, 2]})).await,
        200014,
    );
    assert_wx_err(&add(&app, &t, json!({"kidList": [1, 2]})).await, 200014);
    assert_wx_err(
        &add(&app, &t, json!({"tid": tid, "kidList": [1]})).await,
        200020,
    );
    assert_wx_err(
        &add(&app, &t, json!({"tid": tid, "kidList": [1, 2, 3, 4, 5, 6]})).await,
        200020,
    );
    assert_wx_err(
        &add(&app, &t, json!({"tid": tid, "kidList": [1, 1]})).await,
        200020,
    );
    assert_wx_err(
        &add(&app, &t, json!({"tid": tid, "kidList": [1, 99]})).await,
        200020,
    );
    assert_wx_err(
        &add(&app, &t, json!({"tid": tid, "kidList": "1,2"})).await,
        200020,
    );
    assert_wx_err(
        &add(
            &app,
            &t,
            json!({"tid": tid, "kidList": [1, 2], "sceneDesc": "一二三四五六七八九十一二三四五六"}),
        )
        .await,
        200021,
    );
    assert_wx_err(
        &app.post_raw(&format!("/wxaapi/newtmpl/addtemplate?access_token={t}"), "")
            .await,
        44002,
    );
    assert_wx_err(
        &app.post_raw(
            &format!("/wxaapi/newtmpl/addtemplate?access_token={t}"),
            "tid=1",
        )
        .await,
        47001,
    );
    // A number for tid is accepted too; the same keywords again are a duplicate, in any order.
    let n: u64 = tid.parse().expect("tid");
    assert_eq!(
        errcode(&add(&app, &t, json!({"tid": n, "kidList": [1, 2]})).await),
        0
    );
    assert_wx_err(
        &add(&app, &t, json!({"tid": tid, "kidList": [2, 1]})).await,
        200022,
    );
}

#[tokio::test]
async fn an_app_has_at_most_twenty_five_templates() {
    let app = spawn_app().await;
    let t = app.token().await;
    let titles = all_titles(&app, &t).await;
    let mut added = app.templates.len();
    let mut i = 0;
    while added < 25 {
        let v = add(
            &app,
            &t,
            json!({"tid": titles[i]["tid"].to_string(), "kidList": [1, 2], "sceneDesc": ""}),
        )
        .await;
        if errcode(&v) == 0 {
            added += 1;
        } else {
            assert_wx_err(&v, 200022);
        }
        i += 1;
    }
    let v = add(
        &app,
        &t,
        json!({"tid": titles[i + 1]["tid"].to_string(), "kidList": [1, 3]}),
    )
    .await;
    assert_wx_err(&v, 200012);
}

#[tokio::test]
async fn a_wrong_method_on_a_template_api_is_errcode_404() {
    let app = spawn_app().await;
    let t = app.token().await;
    assert_wx_err(
        &app.get(&format!("/wxaapi/newtmpl/addtemplate?access_token={t}"))
            .await,
        404,
    );
    assert_wx_err(
        &app.post_raw(
            &format!("/wxaapi/newtmpl/gettemplate?access_token={t}"),
            "{}",
        )
        .await,
        404,
    );
}
