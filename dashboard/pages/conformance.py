import streamlit as st

st.title("conformance")
